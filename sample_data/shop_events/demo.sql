-- The categories whose carts are abandoned most
select event_date, category, sessions_with_cart, abandoned_sessions, abandonment_rate
from analytics.cart_abandonment order by sessions_with_cart desc, category limit 5
