using System.Runtime.Versioning;

// The transport is epoll, FIFOs and SO_PEERCRED: Linux only, like the core.
[assembly: SupportedOSPlatform("linux")]
