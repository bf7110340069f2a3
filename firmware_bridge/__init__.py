"""Host <-> device bridge: the edgekit-wire/1 protocol, host link, device agent, emulator and verify."""
