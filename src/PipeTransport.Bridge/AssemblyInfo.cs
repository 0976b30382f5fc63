using System.Runtime.Versioning;

// pipebridge is built on the Linux-only core (epoll, FIFOs, splice).
[assembly: SupportedOSPlatform("linux")]
