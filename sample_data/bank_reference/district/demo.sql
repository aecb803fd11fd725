-- The regions of the bank's 77 districts: inhabitants, average salary and 1996 unemployment
select region, count(*) as districts, sum(inhabitants) as inhabitants,
       round(avg(average_salary)) as average_salary,
       round(avg(unemployment_rate_1996), 2) as unemployment_rate_1996
from analytics.bank_districts group by 1 order by 3 desc
