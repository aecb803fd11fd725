-- Money in and out of the bank's accounts per day
select txn_date, count(*) as accounts, sum(transactions) as transactions, sum(credits) as credits,
       sum(debits) as debits
from analytics.account_daily_summary group by 1 order by 1
