"""The console platform: a terminal chat, so anyone can try Inloop with no account anywhere."""
