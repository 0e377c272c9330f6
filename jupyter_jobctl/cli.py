"""`jupyter jobctl`: the command line."""
