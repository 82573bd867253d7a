package floor

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestFloorAcceptsJSONAndRefusesTheRest(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"version":"1.0","payload":{"n":1}}`, http.StatusAccepted},
		{`not json`, http.StatusBadRequest},
		{strings.Repeat(" ", MaxBodyBytes+1), http.StatusRequestEntityTooLarge},
	} {
		resp, err := http.Post(s.URL+"/v1/messages", "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("body %.20q: status %d (%s), want %d", c.body, resp.StatusCode, body, c.want)
		}
		if c.want == http.StatusAccepted && string(body) != `{"status":"accepted"}` {
			t.Errorf("answer %s", body)
		}
	}
}
