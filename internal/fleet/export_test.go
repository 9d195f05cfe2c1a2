package fleet_test

import "nestbox.dev/internal/agent"

func agentEventsToken(agentToken string) string { return agent.EventsToken(agentToken) }
