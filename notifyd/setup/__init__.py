"""The user's account: the crontab block, the login hook, the config file `notifyd init` writes,
logind's logout rule."""
