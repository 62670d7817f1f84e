package phonesync

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseSetHotelingFixtures(t *testing.T) {
	tests := []fixtureCase[HotelingRequest]{
		{file: "hoteling_set_cisco_mpp.xml", want: HotelingRequest{GuestAddress: "Guest Extension"}},
		{file: "hoteling_set_logout.xml", want: HotelingRequest{}},
		{file: "hoteling_set_auth_audiocodes.xml", want: HotelingRequest{GuestAddress: "agent1001@example.com",
			Auth: &HotelingAuth{Nonce: "BroadWorksXluvk76avT78ohryBW", Algorithm: "MD5", Response: "4F3C2A7E0B4E1C9D8A6F5E4D3C2B1A09"}}},
		{file: "hoteling_bad_no_guest.xml", wantErr: "without guestAddress"},
		{file: "hoteling_bad_control_char.xml", wantErr: "guestAddress with a control character"},
		{file: "hoteling_bad_root.xml", wantErr: `"HotelingEvent" is not SetHoteling`},
		{file: "hoteling_event_broadworks_empty.xml", wantErr: "is not SetHoteling"},
	}
	runFixtures(t, "hoteling_", tests, ParseSetHoteling, func(t *testing.T, got, want HotelingRequest) {
		t.Helper()
		if got.GuestAddress != want.GuestAddress || (got.Auth == nil) != (want.Auth == nil) ||
			(got.Auth != nil && *got.Auth != *want.Auth) {
			t.Fatalf("got %+v (auth %+v), want %+v (auth %+v)", got, got.Auth, want, want.Auth)
		}
	})
}

func TestHotelingEventDoc(t *testing.T) {
	tests := []struct {
		name  string
		h     Hoteling
		nonce string
		want  string
	}{
		{"no guest", Hoteling{}, "", `<?xml version="1.0" encoding="UTF-8"?>
<HotelingEvent xmlns="http://schema.broadsoft.com/hoteling">
<guestAddress/>
</HotelingEvent>
`},
		{"guest with time left", Hoteling{GuestAddress: "agent1001@example.com", Expires: 3424 * time.Second}, "", `<?xml version="1.0" encoding="UTF-8"?>
<HotelingEvent xmlns="http://schema.broadsoft.com/hoteling">
<guestAddress>agent1001@example.com</guestAddress>
<expires>3424</expires>
</HotelingEvent>
`},
		{"challenge", Hoteling{Expires: 1500 * time.Millisecond}, "n<1>", `<?xml version="1.0" encoding="UTF-8"?>
<HotelingEvent xmlns="http://schema.broadsoft.com/hoteling">
<guestAddress/>
<expires>2</expires>
<authenticationData>
<nonce>n&lt;1&gt;</nonce>
</authenticationData>
</HotelingEvent>
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(HotelingEventDoc(tc.h, tc.nonce)); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestCheckHotelingResponse(t *testing.T) {
	sum := md5.Sum([]byte("BroadWorksXluvk76avT78ohryBW:s3cret"))
	good := hex.EncodeToString(sum[:])
	tests := []struct {
		name, nonce, password, response string
		want                            bool
	}{
		{"lowercase", "BroadWorksXluvk76avT78ohryBW", "s3cret", good, true},
		{"uppercase", "BroadWorksXluvk76avT78ohryBW", "s3cret", strings.ToUpper(good), true},
		{"wrong password", "BroadWorksXluvk76avT78ohryBW", "S3cret", good[:31] + "0", false},
		{"other nonce", "other", "s3cret", good, false},
		{"truncated", "BroadWorksXluvk76avT78ohryBW", "s3cret", good[:31], false},
		{"empty response", "BroadWorksXluvk76avT78ohryBW", "s3cret", "", false},
		{"empty nonce", "", "s3cret", good, false},
	}
	for _, tc := range tests {
		if got := CheckHotelingResponse(tc.nonce, tc.password, tc.response); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A login a phone answers the challenge with parses and checks out.
func TestHotelingChallengeRoundTrip(t *testing.T) {
	nonce := "abc123"
	sum := md5.Sum([]byte(nonce + ":pw"))
	body := `<SetHoteling xmlns="` + hotelingNamespace + `"><guestAddress>g@example.com</guestAddress><authenticationData><nonce>` + nonce +
		`</nonce><algorithm>MD5</algorithm><response>` + hex.EncodeToString(sum[:]) + `</response></authenticationData></SetHoteling>`
	req, err := ParseSetHoteling([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if req.Auth == nil || !CheckHotelingResponse(req.Auth.Nonce, "pw", req.Auth.Response) {
		t.Fatalf("challenge answer refused: %+v", req.Auth)
	}
}

func FuzzParseSetHoteling(f *testing.F) {
	for _, b := range fixtures(f, "hoteling_") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseSetHoteling(body)
		if err != nil {
			if !errors.Is(err, ErrBadBody) {
				t.Fatalf("error %v does not wrap ErrBadBody", err)
			}
			return
		}
		// The answer to an accepted login reads back the same address.
		doc := HotelingEventDoc(Hoteling{GuestAddress: req.GuestAddress}, "")
		root, err := parseXML(doc)
		if err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if got := root.childText("guestAddress"); got != req.GuestAddress || root.space != hotelingNamespace {
			t.Fatalf("guestAddress %q (ns %q), want %q", got, root.space, req.GuestAddress)
		}
	})
}
