package servicetest

// Query runs a query returning one integer, such as a count, against the
// service's database.
func (s *Service) Query(sql string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.Pool.QueryRow(s.ctx, sql, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Applied is how many messages the service's inbox consumer has claimed.
func (s *Service) Applied() int {
	s.t.Helper()
	return s.Query(`SELECT count(*) FROM inbox WHERE consumer = $1`, s.spec.Consumer)
}

// WaitApplied waits until the inbox consumer claimed message id: its
// effects are committed.
func (s *Service) WaitApplied(id string) {
	s.t.Helper()
	s.Poll("message "+id+" applied", func() (bool, string) {
		return s.Query(`SELECT count(*) FROM inbox WHERE consumer = $1 AND message_id = $2`, s.spec.Consumer, id) == 1, ""
	})
}

// Duplicates is how many redeliveries the inbox consumer absorbed.
func (s *Service) Duplicates() int {
	s.t.Helper()
	return s.Query(`SELECT coalesce((SELECT count FROM inbox_duplicates WHERE consumer = $1), 0)`, s.spec.Consumer)
}

// OutboxCount counts the events of eventType the service wrote to its
// outbox; all of them when eventType is "".
func (s *Service) OutboxCount(eventType string) int {
	s.t.Helper()
	return s.Query(`SELECT count(*) FROM watermill_outbox WHERE $1 = '' OR metadata->>'type' = $1`, eventType)
}

// OutboxCountFor counts the events of eventType in the outbox whose
// payload field key is id, such as those about one order.
func (s *Service) OutboxCountFor(eventType, key, id string) int {
	s.t.Helper()
	return s.Query(`SELECT count(*) FROM watermill_outbox WHERE metadata->>'type' = $1 AND payload->>$2 = $3`, eventType, key, id)
}
