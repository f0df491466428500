"""The user's account: the crontab block, the login hook, logind's logout rule."""
