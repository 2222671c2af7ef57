"""The Store contract over every store (conftest's `store` fixture), and each store's own
promises."""
