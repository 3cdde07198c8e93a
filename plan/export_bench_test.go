package plan

// ForgetParsedBodies resets the memory of scripts that parsed to what a
// process starts with, so a benchmark measures a render as the first in its
// process.
func ForgetParsedBodies() {
	parsedBodies.Lock()
	parsedBodies.last = startingBodies()
	parsedBodies.Unlock()
	lastTrees.Lock()
	clear(lastTrees.last)
	lastTrees.Unlock()
}
