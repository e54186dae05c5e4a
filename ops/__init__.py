"""What operators run across the services: the `a6pay` CLI, the stack runner (`make run`)
with its demo storefront, the mail catcher and the observability configuration. Nothing in
shared/ imports this."""
