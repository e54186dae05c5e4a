"""The demo storefront: the seed's frontend code on a page of its own origin."""
