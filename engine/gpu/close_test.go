package gpu

import "testing"

// Closing a backend with recorded but unsubmitted work finishes that work instead of failing.
func TestCloseWithPendingWork(t *testing.T) {
	b := OpenForTest(t)
	x, err := b.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	b.Fill(Whole(x), 7)
	if err := b.Close(); err != nil {
		t.Fatalf("Close with pending work: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
