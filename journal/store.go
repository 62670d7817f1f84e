package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Key layout. One bbolt file, these top-level buckets:
//
//	assoc       id                                   -> record (JSON, see record)
//	desk        len16(deviceID) deviceID start id    -> empty   (desk index)
//	agent       len16(agentUserID) agentUserID start id -> empty (agent index)
//	open-agent  agentUserID                          -> id      (open associations by agent)
//	open-desk   deviceID                             -> id      (open associations by desk)
//	ended       end id                               -> empty   (for Prune: oldest ends first)
//
// id is the association ID, 8 bytes big endian (bbolt's bucket sequence of
// assoc, from 1). start and end are nanoseconds since 1970 as 8 bytes big
// endian with the sign bit flipped, so that byte order is time order, before
// 1970 included. len16 is the string's length, 2 bytes big endian: it keeps
// "desk1" and "desk10" apart, so a prefix seek finds one desk's or agent's
// entries only, in start order (ties in ID order). Index values are empty:
// the key says everything, and bbolt compares keys only.
var (
	bucketAssoc     = []byte("assoc")
	bucketDesk      = []byte("desk")
	bucketAgent     = []byte("agent")
	bucketOpenAgent = []byte("open-agent")
	bucketOpenDesk  = []byte("open-desk")
	bucketEnded     = []byte("ended")
	bucketMeta      = []byte("meta")

	metaVersionKey = []byte("version")
	formatVersion  = []byte("1")
)

// Buckets lists the journal's buckets (the file's top level for a journal
// of its own, the store's journal bucket for an attached one), for
// copying a journal file into the store.
func Buckets() [][]byte {
	return [][]byte{bucketAssoc, bucketDesk, bucketAgent, bucketOpenAgent, bucketOpenDesk, bucketEnded, bucketMeta}
}

// parent is where the journal's buckets are: a *bolt.Tx or a *bolt.Bucket.
type parent interface {
	Bucket(name []byte) *bolt.Bucket
	CreateBucketIfNotExists(name []byte) (*bolt.Bucket, error)
}

func initBuckets(p parent) error {
	for _, name := range Buckets() {
		if _, err := p.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := p.Bucket(bucketMeta)
	switch v := meta.Get(metaVersionKey); {
	case v == nil:
		return meta.Put(metaVersionKey, formatVersion)
	case !bytes.Equal(v, formatVersion):
		return fmt.Errorf("unsupported journal format %q (this build reads %q)", v, formatVersion)
	}
	return nil
}

type txBuckets struct {
	assoc, desk, agent, openAgent, openDesk, ended *bolt.Bucket
}

func buckets(tx interface{ Bucket([]byte) *bolt.Bucket }) txBuckets {
	return txBuckets{
		assoc:     tx.Bucket(bucketAssoc),
		desk:      tx.Bucket(bucketDesk),
		agent:     tx.Bucket(bucketAgent),
		openAgent: tx.Bucket(bucketOpenAgent),
		openDesk:  tx.Bucket(bucketOpenDesk),
		ended:     tx.Bucket(bucketEnded),
	}
}

// record is an Association as stored. JSON so that fields can be added
// without a migration; times in UnixNano so that nothing depends on a
// time zone database.
type record struct {
	AgentID     string `json:"agent"`
	AgentUserID string `json:"agentUser"`
	DeviceID    string `json:"device"`
	DeskUserID  string `json:"deskUser"`
	Start       int64  `json:"start"`
	End         *int64 `json:"end,omitempty"` // nil while open (0 is 1970, a valid time)
	EndedBy     string `json:"endedBy,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

func (b txBuckets) put(a Association) error {
	r := record{
		AgentID: a.AgentID, AgentUserID: a.AgentUserID, DeviceID: a.DeviceID, DeskUserID: a.DeskUserID,
		Start: a.Start.UnixNano(), EndedBy: string(a.EndedBy), Detail: a.Detail,
	}
	if !a.End.IsZero() {
		end := a.End.UnixNano()
		r.End = &end
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.assoc.Put(encodeID(a.ID), v)
}

func (b txBuckets) get(id ID) (Association, error) {
	v := b.assoc.Get(encodeID(id))
	if v == nil {
		return Association{}, fmt.Errorf("%w: association %d missing", ErrCorrupt, id)
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return Association{}, fmt.Errorf("%w: association %d: %v", ErrCorrupt, id, err)
	}
	a := Association{
		ID: id, AgentID: r.AgentID, AgentUserID: r.AgentUserID, DeviceID: r.DeviceID, DeskUserID: r.DeskUserID,
		Start: time.Unix(0, r.Start).UTC(), EndedBy: EndReason(r.EndedBy), Detail: r.Detail,
	}
	if r.End != nil {
		a.End = time.Unix(0, *r.End).UTC()
	}
	return a, nil
}

// latest is the association of key (a desk or an agent, by index) that
// started last.
func (b txBuckets) latest(index *bolt.Bucket, key string) (Association, bool, error) {
	id, ok := lastBefore(index.Cursor(), key, indexKey(key, maxTimeKey, ^ID(0)))
	if !ok {
		return Association{}, false, nil
	}
	a, err := b.get(id)
	return a, err == nil, err
}

// lastStartedBy is the ID of the association of key that started last at
// or before at.
func (b txBuckets) lastStartedBy(index *bolt.Bucket, key string, at time.Time) (ID, bool) {
	return lastBefore(index.Cursor(), key, indexKey(key, timeKey(at), ^ID(0)))
}

// lastBefore is the ID in the last index key of key that sorts before seek.
func lastBefore(c *bolt.Cursor, key string, seek []byte) (ID, bool) {
	k, _ := c.Seek(seek)
	k, _ = prevKey(c, k)
	prefix := keyPrefix(key)
	if k == nil || !hasPrefix(k, prefix) {
		return 0, false
	}
	_, id := splitIndexKey(k, len(prefix))
	return id, true
}

var maxTimeKey = [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func timeKey(t time.Time) [8]byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(t.UnixNano())^(1<<63))
	return k
}

func keyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k)^(1<<63))).UTC()
}

func encodeID(id ID) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(id))
}

func decodeID(v []byte) ID {
	if len(v) != 8 {
		return 0 // get then reports association 0 missing: ErrCorrupt
	}
	return ID(binary.BigEndian.Uint64(v))
}

func keyPrefix(s string) []byte {
	k := make([]byte, 0, 2+len(s)+16)
	k = binary.BigEndian.AppendUint16(k, uint16(len(s)))
	return append(k, s...)
}

func indexKey(s string, start [8]byte, id ID) []byte {
	k := keyPrefix(s)
	k = append(k, start[:]...)
	return binary.BigEndian.AppendUint64(k, uint64(id))
}

func splitIndexKey(k []byte, prefixLen int) (time.Time, ID) {
	if len(k) != prefixLen+16 {
		return time.Time{}, 0
	}
	return keyTime(k[prefixLen : prefixLen+8]), decodeID(k[prefixLen+8:])
}

func endedKey(end time.Time, id ID) []byte {
	k := timeKey(end)
	return binary.BigEndian.AppendUint64(k[:], uint64(id))
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) == len(prefix)+16 && bytes.HasPrefix(k, prefix)
}

func sortByID(as []Association) {
	slices.SortFunc(as, func(x, y Association) int {
		switch {
		case x.ID < y.ID:
			return -1
		case x.ID > y.ID:
			return 1
		}
		return 0
	})
}

func validID(name, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalid, name)
	case len(s) > maxIDLen:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, name, maxIDLen)
	}
	return nil
}

func validTime(name string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%w: zero %s time", ErrInvalid, name)
	}
	if !time.Unix(0, t.UnixNano()).Equal(t) {
		return fmt.Errorf("%w: %s time %v outside 1678..2262", ErrInvalid, name, t)
	}
	return nil
}

func validateBegin(a Association) error {
	for _, f := range []struct{ name, v string }{
		{"agent ID", a.AgentID}, {"agent user ID", a.AgentUserID}, {"device ID", a.DeviceID}, {"desk user ID", a.DeskUserID},
	} {
		if err := validID(f.name, f.v); err != nil {
			return err
		}
	}
	if err := validTime("start", a.Start); err != nil {
		return err
	}
	switch {
	case a.ID != 0:
		return fmt.Errorf("%w: Begin given an ID (%d); the journal assigns it", ErrInvalid, a.ID)
	case !a.End.IsZero() || a.EndedBy != "":
		return fmt.Errorf("%w: Begin given an end; record the end with End", ErrInvalid)
	case len(a.Detail) > maxDetailLen:
		return fmt.Errorf("%w: detail longer than %d bytes", ErrInvalid, maxDetailLen)
	}
	return nil
}

func validateEnd(agentUserID string, at time.Time, by EndReason, detail string) error {
	if err := validID("agent user ID", agentUserID); err != nil {
		return err
	}
	if err := validTime("end", at); err != nil {
		return err
	}
	if !by.Valid() {
		return fmt.Errorf("%w: unknown end reason %q", ErrInvalid, by)
	}
	if len(detail) > maxDetailLen {
		return fmt.Errorf("%w: detail longer than %d bytes", ErrInvalid, maxDetailLen)
	}
	return nil
}

func validateQuery(name, id string, at time.Time) error {
	if err := validID(name, id); err != nil {
		return err
	}
	return validTime("query", at)
}
