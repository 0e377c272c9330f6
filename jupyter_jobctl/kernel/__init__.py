"""Inside the user's kernel: the API client, widgets and %jobctl magics."""
