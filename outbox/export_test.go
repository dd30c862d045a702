package outbox

// SetAfterConfirm installs a hook that runs between the broker's confirm of a
// batch and the cursor update (the window a crash makes duplicates in).
func SetAfterConfirm(r *Relay, f func(batch int) error) { r.afterConfirm = f }
