-- How far the daily poll of Razorpay's settlements list has read: the next poll starts a
-- day before it. Settlements recorded by their webhooks say nothing about that: a webhook
-- heard after one that was lost must not move the poll past the lost one.
CREATE TABLE settlement_poll (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    listed_until timestamptz NOT NULL
);
