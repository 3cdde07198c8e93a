package plan

// ForgetParsedBodies empties the memory of script bodies that parsed, so a
// benchmark measures a render as the first in its process.
func ForgetParsedBodies() {
	parsedBodies.Lock()
	clear(parsedBodies.last)
	parsedBodies.Unlock()
}
