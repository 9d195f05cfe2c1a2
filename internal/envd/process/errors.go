package process

// kinded gives err an errdefs kind without repeating the kind's text: the
// message stays the guest's ("permission denied"), errors.Is finds both.
type kinded struct{ kind, err error }

func (e kinded) Error() string   { return e.err.Error() }
func (e kinded) Unwrap() []error { return []error{e.kind, e.err} }
