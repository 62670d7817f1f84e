package csta

// Events are encoded once per change and edition and shared by every
// monitor (issue 17). Publish encodes the event's document once for each
// edition its monitors' connections speak, with the monitorCrossRefID left
// open, and frames it for a monitor by copying the bytes around that
// monitor's crossRefID — nothing is encoded again. Connections number their
// monitors from 1, so many monitors share a crossRefID: their frame is
// made once and the same bytes are queued on each of their connections
// (a queued frame is only ever read).

// eventDoc is an event's document in one edition with the crossRefID's
// place left open at at.
type eventDoc struct {
	doc     []byte
	at      int
	err     error
	encoded bool
}

// frameKey names one framed copy of the event.
type frameKey struct {
	ed         Edition
	crossRefID string
}

// eventFrames is one Publish's encodings of its event.
type eventFrames struct {
	ev     *Event
	docs   [Edition6 + 1]eventDoc // by edition
	share  bool                   // more than one monitor: keep the frames made
	frames map[frameKey][]byte
}

// newEventFrames prepares ev for monitors monitors.
func newEventFrames(ev *Event, monitors int) *eventFrames {
	return &eventFrames{ev: ev, share: monitors > 1}
}

// eventDocSize is the room an event document is encoded in at first: the
// longest, an AgentNotReadyEvent with its private data, fits.
const eventDocSize = 768

func (f *eventFrames) doc(ed Edition) eventDoc {
	if ed < 0 || int(ed) >= len(f.docs) { // no such edition: the encoder's to refuse
		var d eventDoc
		d.doc, d.at, d.err = appendEventDoc(nil, f.ev, "", ed)
		return d
	}
	d := &f.docs[ed]
	if !d.encoded {
		d.doc, d.at, d.err = appendEventDoc(make([]byte, 0, eventDocSize), f.ev, "", ed)
		d.encoded = true
	}
	return *d
}

// frame returns the framed event for the monitor crossRefID on a
// connection speaking ed.
func (f *eventFrames) frame(ed Edition, crossRefID string) ([]byte, error) {
	if !f.share { // one monitor: its frame is the only encoding
		buf, err := AppendEvent(make([]byte, HeaderSize, HeaderSize+eventDocSize), f.ev, crossRefID, ed)
		if err != nil {
			return nil, err
		}
		return finishFrame(buf, EventInvokeID)
	}
	key := frameKey{ed, crossRefID}
	if fr, ok := f.frames[key]; ok {
		return fr, nil
	}
	d := f.doc(ed)
	if d.err != nil {
		return nil, d.err
	}
	buf := make([]byte, HeaderSize, HeaderSize+len(d.doc)+len(crossRefID))
	buf = append(buf, d.doc[:d.at]...)
	buf = appendEscaped(buf, crossRefID)
	buf = append(buf, d.doc[d.at:]...)
	buf, err := finishFrame(buf, EventInvokeID)
	if err != nil {
		return nil, err
	}
	if f.frames == nil {
		f.frames = make(map[frameKey][]byte)
	}
	f.frames[key] = buf
	return buf, nil
}
