"""What runs on the Raspberry Pi dongle and on reader microcontrollers: capture, decode, encrypt, send."""
