using System.Globalization;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Kestrel;

/// <summary>
/// A <c>kestrel-server</c> child: one transport per process, so the transports never share a heap, a
/// thread pool or a memory pool. Disposing closes its stdin (a graceful stop) and waits for it.
/// </summary>
internal sealed class KestrelServerProcess : IAsyncDisposable
{
    private readonly ChildProcess _child;

    private KestrelServerProcess(ChildProcess child, string transport, string[] ready)
    {
        _child = child;
        Transport = transport;
        Port = int.Parse(ready[0], CultureInfo.InvariantCulture);
        Http2Port = int.Parse(ready[1], CultureInfo.InvariantCulture);
        UnixPath = ready[2];
        Http2UnixPath = ready[3];
    }

    /// <summary><c>sockets</c>, <c>pipe</c> or <c>pipe-inline</c>.</summary>
    public string Transport { get; }

    /// <summary>The loopback port it serves HTTP/1.1 on.</summary>
    public int Port { get; }

    /// <summary>The loopback port it serves HTTP/2 (prior knowledge) on.</summary>
    public int Http2Port { get; }

    /// <summary>The Unix socket it serves HTTP/1.1 on.</summary>
    public string UnixPath { get; }

    /// <summary>The Unix socket it serves HTTP/2 (prior knowledge) on.</summary>
    public string Http2UnixPath { get; }

    /// <param name="transport"><c>sockets</c>, <c>pipe</c> or <c>pipe-inline</c>.</param>
    /// <param name="environment">Extra environment variables of the child (e.g. tiered compilation off).</param>
    /// <param name="cancellationToken">Cancels the wait for "ready".</param>
    public static async Task<KestrelServerProcess> StartAsync(string transport, IReadOnlyDictionary<string, string>? environment, CancellationToken cancellationToken)
    {
        var child = ChildProcess.StartSelf(true, environment, "kestrel-server", transport);
        try
        {
            string[] ready = await child.ExpectAsync("ready ", cancellationToken);
            return new KestrelServerProcess(child, transport, ready);
        }
        catch
        {
            await child.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _child.StandardInput.Close();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await _child.WaitForSuccessAsync(timeout.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException or IOException)
        {
            Console.Error.WriteLine($"kestrel-server {Transport} did not stop cleanly: {e.Message}");
        }
        finally
        {
            await _child.DisposeAsync();
        }
    }
}
