package app

import "context"

// STUB until outbox lands.
func (s *Service) SetLowBalanceThreshold(ctx context.Context, id string, n int64) error { return nil }
