-- Requests, errors and bot share per server-local day
select log_date, sum(requests) as requests, sum(status_4xx + status_5xx) as errors,
       sum(bot_requests) as bot_requests, max(distinct_clients) as peak_hour_clients
from analytics.web_traffic_hourly group by 1 order by 1
