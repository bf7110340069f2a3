"""Host <-> device bridge: the edgekit-wire/2 protocol, host link, device agent, emulator and verify."""
