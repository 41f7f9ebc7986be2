"""minigpt: a GPT built from scratch, one chapter per module (see README.md for the chapter map)."""
