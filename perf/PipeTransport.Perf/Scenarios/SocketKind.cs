namespace PipeTransport.Perf.Scenarios;

/// <summary>Which socket family a socket scenario runs over.</summary>
internal enum SocketKind
{
    /// <summary>TCP over the IPv4 loopback.</summary>
    Tcp,

    /// <summary>A Unix domain stream socket with a path in the work directory.</summary>
    Unix,
}
