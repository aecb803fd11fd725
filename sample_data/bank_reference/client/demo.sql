-- The bank's clients by decade of birth and sex (decoded from birth_number)
select (extract(year from birth_date)::int / 10) * 10 as born_in, sex, count(*) as clients
from analytics.bank_clients group by 1, 2 order by 1, 2
