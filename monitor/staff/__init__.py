"""Staff: the people who log into the console, their roles, sessions, tokens and second factor.

Every change goes through the functions here (the web, the CLI and the setup
page alike) and writes its audit entry in the same transaction.
"""
