"""Start-up configuration: flags, the environment and files become one frozen Options."""
