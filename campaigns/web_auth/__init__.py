"""Sign-in for the web dashboard: sessions, CSRF tokens and throttling of failed credentials."""
