using System.Net;

namespace PipeTransport.Perf.Children;

/// <summary>Idle connections held by <see cref="FdListener"/> connections with a pending <c>Input.ReadAsync</c>.</summary>
internal sealed class FdIdleServer : IIdleServer
{
    private readonly FdListener _listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    private readonly List<(FdConnection Connection, Task Hold)> _held = [];

    public EndPoint LocalEndPoint => _listener.LocalEndPoint;

    public async Task AcceptAndHoldAsync(int count)
    {
        for (int i = 0; i < count; i++)
        {
            var connection = await _listener.AcceptAsync() ?? throw new InvalidOperationException("listener closed");
            _held.Add((connection, HoldAsync(connection)));
        }
    }

    public async Task ReleaseAllAsync()
    {
        foreach (var (connection, hold) in _held)
        {
            await hold;
            await connection.DisposeAsync();
        }

        _held.Clear();
    }

    private static async Task HoldAsync(FdConnection connection)
    {
        while (true)
        {
            var result = await connection.Input.ReadAsync();
            connection.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync() => await _listener.DisposeAsync();
}
