package xsi

// Load is how busy the Actions client is towards the XSP that gets the next
// request (the first one not passed over, Client.order): what a caller
// needs to judge whether more work can be answered in time (hoteling's
// admission of hot-desk sequences).
type Load struct {
	InFlight int // requests holding one of its in-flight slots
	Waiting  int // requests waiting for a slot
	Cap      int // its in-flight bound (xsi.max_in_flight)
}

// Load reports the load of the XSP the next request goes to.
func (c *Client) Load() Load {
	s := c.order()[0]
	return Load{InFlight: len(s.inflight), Waiting: int(s.waiting.Load()), Cap: cap(s.inflight)}
}
