"""What the host keeps: users, keys, chutes, deploy records, encrypted secrets."""
