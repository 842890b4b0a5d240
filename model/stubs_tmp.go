package model

func (c *Checkpoint) readGGUF(b blob) error { return nil }
