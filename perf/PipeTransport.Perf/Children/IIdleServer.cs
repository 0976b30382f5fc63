using System.Net;

namespace PipeTransport.Perf.Children;

/// <summary>A server that accepts connections and holds each idle with a pending read.</summary>
internal interface IIdleServer : IAsyncDisposable
{
    EndPoint LocalEndPoint { get; }

    /// <summary>Accepts <paramref name="count"/> connections, leaving a pending read on each.</summary>
    Task AcceptAndHoldAsync(int count);

    /// <summary>Closes every held connection (after the warm-up).</summary>
    Task ReleaseAllAsync();
}
