-- Revenue and customers per trading day
select order_date, count(*) as customers, sum(revenue) as revenue
from analytics.customer_daily_sales group by 1 order by 1
