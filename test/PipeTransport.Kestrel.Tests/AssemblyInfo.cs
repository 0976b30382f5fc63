using System.Runtime.Versioning;
using NUnit.Framework;

[assembly: SupportedOSPlatform("linux")]

// Several tests count this process's fds and measure buffering: they must not overlap.
[assembly: NonParallelizable]
