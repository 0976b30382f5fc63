using System.Collections.Concurrent;

namespace PipeTransport.Kestrel.Tests;

/// <summary>What a <see cref="LoadLoop"/> saw: requests sent, answered (any status), failed, non-2xx, and the answering pids.</summary>
internal sealed record LoadResult(long Requests, long Answered, long Errors, long Non2xx, IReadOnlyList<string> FirstErrors, IReadOnlyCollection<string> Pids);

/// <summary>
/// Workers that send <c>GET /</c> one after another without pause, half over TCP loopback and half over
/// a Unix socket (when given), each through its own pooled keep-alive connections as a real client does.
/// A request that fails (connection refused or reset, timeout) is counted, never retried by the test.
/// </summary>
internal sealed class LoadLoop : IAsyncDisposable
{
    private const int KeptErrors = 10;

    private readonly HttpClient _tcp;
    private readonly HttpClient? _unix;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationToken _abort;
    private readonly ConcurrentQueue<string> _errors = new();
    private readonly ConcurrentDictionary<string, bool> _pids = new();
    private readonly List<(long Count, TaskCompletionSource Reached)> _waiters = [];
    private Task[] _workers = [];
    private long _requests;
    private long _answered;
    private long _failed;
    private long _non2xx;

    private LoadLoop(int port, string? unixPath, CancellationToken abort)
    {
        _abort = abort;
        _tcp = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(60) };
        if (unixPath is not null)
        {
            _unix = new HttpClient(TestServer.ConnectToUnix(new SocketsHttpHandler(), unixPath))
            {
                BaseAddress = new Uri("http://localhost/"),
                Timeout = TimeSpan.FromSeconds(60),
            };
        }
    }

    public long Answered => Interlocked.Read(ref _answered);

    public static LoadLoop Start(int port, string? unixPath, int workers, CancellationToken abort)
    {
        var load = new LoadLoop(port, unixPath, abort);
        load._workers = [.. Enumerable.Range(0, workers).Select(i => Task.Run(() => load.WorkAsync(i % 2 == 1 && load._unix is not null ? load._unix : load._tcp)))];
        return load;
    }

    /// <summary>Completes once <paramref name="count"/> requests in all have been answered.</summary>
    public Task WaitForRequestsAsync(long count, CancellationToken cancellationToken)
    {
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            _waiters.Add((count, reached));
        }
        Notify();
        return reached.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Lets each worker finish the request it has in flight, then returns the counts.</summary>
    public async Task<LoadResult> StopAsync()
    {
        _stop.Cancel();
        await Task.WhenAll(_workers);
        return new LoadResult(Interlocked.Read(ref _requests), Answered, Interlocked.Read(ref _failed), Interlocked.Read(ref _non2xx),
            [.. _errors], [.. _pids.Keys]);
    }

    private async Task WorkAsync(HttpClient client)
    {
        while (!_stop.IsCancellationRequested && !_abort.IsCancellationRequested)
        {
            Interlocked.Increment(ref _requests);
            try
            {
                using HttpResponseMessage response = await client.GetAsync("/", _abort);
                string body = await response.Content.ReadAsStringAsync(_abort);
                Interlocked.Increment(ref _answered);
                if (response.IsSuccessStatusCode)
                {
                    _pids.TryAdd(body, true);
                }
                else
                {
                    Interlocked.Increment(ref _non2xx);
                    Keep($"{(int)response.StatusCode} {body}");
                }
            }
            catch (Exception e) when (!_abort.IsCancellationRequested && e is HttpRequestException or TaskCanceledException or IOException)
            {
                Interlocked.Increment(ref _failed);
                Keep(e.InnerException is { } inner ? $"{e.Message} ({inner.Message})" : e.Message);
            }
            catch (OperationCanceledException) when (_abort.IsCancellationRequested)
            {
                return;
            }
            Notify();
        }
    }

    private void Keep(string error)
    {
        if (_errors.Count < KeptErrors)
        {
            _errors.Enqueue(error);
        }
    }

    private void Notify()
    {
        long answered = Answered;
        lock (_waiters)
        {
            foreach (var (count, reached) in _waiters.Where(w => answered >= w.Count))
            {
                reached.TrySetResult();
            }
            _waiters.RemoveAll(w => w.Reached.Task.IsCompleted);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await Task.WhenAll(_workers).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _tcp.Dispose();
        _unix?.Dispose();
        _stop.Dispose();
    }
}
