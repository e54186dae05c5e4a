"""`make chaos-ha`: paid bookings through the gateway while the data tier loses nodes
(the PostgreSQL primary, the RabbitMQ node leading the notifier's queue), on clusters
built on this machine (ops/ha_cluster.py). The failover test drives the same, smaller."""
