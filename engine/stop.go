package engine

import "strings"

// StopText streams generated text while watching for stop strings: it holds back only the tail that could
// still become a stop string, and ends the text right before the first one found.
type StopText struct {
	stops   []string
	pending string
	Stopped bool
}

// NewStopText watches for the given (non-empty) stop strings.
func NewStopText(stops []string) *StopText {
	var s []string
	for _, x := range stops {
		if x != "" {
			s = append(s, x)
		}
	}
	return &StopText{stops: s}
}

// Push adds newly decoded text and returns what can be printed now.
func (s *StopText) Push(text string) string {
	if s.Stopped {
		return ""
	}
	s.pending += text
	cut := -1
	for _, st := range s.stops {
		if i := strings.Index(s.pending, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		out := s.pending[:cut]
		s.pending = ""
		s.Stopped = true
		return out
	}
	// Keep the longest tail that is a proper prefix of some stop string.
	hold := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(s.pending)); k > hold; k-- {
			if strings.HasSuffix(s.pending, st[:k]) {
				hold = k
				break
			}
		}
	}
	out := s.pending[:len(s.pending)-hold]
	s.pending = s.pending[len(s.pending)-hold:]
	return out
}

// Flush returns the held-back text at the end of generation.
func (s *StopText) Flush() string {
	out := s.pending
	s.pending = ""
	return out
}
