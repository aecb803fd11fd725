-- The bank's accounts by how often they get a statement, and when they were opened
select statement_frequency, count(*) as accounts, min(opened_date) as first_opened,
       max(opened_date) as last_opened
from analytics.bank_accounts group by 1 order by 2 desc
