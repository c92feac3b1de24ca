"""The business rules of Headwater: aggregates, events and value objects.

Nothing here imports another Headwater package. Infrastructure stores these
events; the application layer runs commands against these aggregates.
"""
