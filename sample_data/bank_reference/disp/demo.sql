-- Accounts by how many clients may use them (an owner, and maybe a user)
select users_per_account, count(*) as accounts
from (select account_id, count(*) as users_per_account from analytics.bank_dispositions
      group by account_id) as per_account
group by 1 order by 1
