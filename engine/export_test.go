package engine

// SetMainCalled lets a test see what a program that never called Main
// gets; it returns the previous setting.
func SetMainCalled(b bool) bool { return mainCalled.Swap(b) }
