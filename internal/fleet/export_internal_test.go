package fleet

// MonitorOnce is one pass of the host monitor, for tests that drive it
// with their own clock.
var MonitorOnce = (*Registry).monitorOnce
