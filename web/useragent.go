package web

import "strings"

// device names a session's browser and system the way a person says it
// ("Firefox on Linux") instead of showing the user-agent string. Order
// matters: Edge and Opera say "Chrome", Chrome says "Safari", Android says
// "Linux", iOS says "Mac OS X".
func device(ua string) string {
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return "Unknown device"
	}
	browser := firstMatch(ua, [][2]string{
		{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"},
		{"OPR/", "Opera"}, {"Vivaldi/", "Vivaldi"}, {"SamsungBrowser/", "Samsung Internet"},
		{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"},
		{"CriOS/", "Chrome"}, {"Chrome/", "Chrome"}, {"Chromium/", "Chromium"},
		{"Safari/", "Safari"},
		{"keyledger/", "keyledger CLI"}, {"curl/", "curl"}, {"Go-http-client/", "Go program"},
	})
	system := firstMatch(ua, [][2]string{
		{"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Android", "Android"}, {"CrOS", "ChromeOS"},
		{"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"Macintosh", "macOS"}, {"Linux", "Linux"},
		{"FreeBSD", "FreeBSD"}, {"OpenBSD", "OpenBSD"},
	})
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return "Browser on " + system
	}
	return "Unknown device"
}

func firstMatch(ua string, table [][2]string) string {
	for _, m := range table {
		if strings.Contains(ua, m[0]) {
			return m[1]
		}
	}
	return ""
}
