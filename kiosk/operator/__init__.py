"""What operators do to a running kiosk: commands, actions and the state they set."""
