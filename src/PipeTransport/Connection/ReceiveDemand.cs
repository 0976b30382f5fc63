using System.Threading.Tasks.Sources;

namespace PipeTransport.Connection;

/// <summary>
/// Reading on demand, Go's way, for the Input of a pipe's read end: after each flush the receive loop
/// parks here instead of reading ahead on the reactor thread, and a read that finds Input empty resumes
/// it inline, so the read(2) runs on the application's thread and completes that read before it returns.
/// A reader that keeps up with its writer then never waits for another thread; the loop waits on the fd
/// only when read(2) says EAGAIN. A streaming copy or <c>ReadAtLeastAsync</c> turns it off (the loop then
/// reads ahead, as for sockets); the end of the direction or a hand-off wakes a parked loop.
/// </summary>
internal sealed class ReceiveDemand : IValueTaskSource
{
    private const int Idle = 0;     // the loop runs, or is about to park
    private const int Demanded = 1; // a read found Input empty, or the loop was woken, while it was not parked
    private const int Parked = 2;   // the loop waits for a read to ask
    private const int Off = 3;      // read ahead from now on

    private int _state;
    private ManualResetValueTaskSourceCore<bool> _core;

    /// <summary>Whether the loop reads ahead (demand is off).</summary>
    public bool IsOff => Volatile.Read(ref _state) == Off;

    /// <summary>The loop, after a flush: completes at once if a read asked meanwhile or demand is off, else parks.</summary>
    public ValueTask WaitAsync()
    {
        _core.Reset();
        while (true)
        {
            int state = Volatile.Read(ref _state);
            if (state == Off)
            {
                return default;
            }

            if (state == Demanded)
            {
                if (Interlocked.CompareExchange(ref _state, Idle, Demanded) == Demanded)
                {
                    return default;
                }

                continue;
            }

            if (Interlocked.CompareExchange(ref _state, Parked, Idle) == Idle)
            {
                return new ValueTask(this, _core.Version);
            }
        }
    }

    /// <summary>A read found Input empty: a parked loop runs here, on the caller's thread, until it parks again or waits for the fd.</summary>
    public void Demand() => Ask(inline: true);

    /// <summary>Read ahead from now on; a parked loop resumes on the thread pool.</summary>
    public void TurnOff()
    {
        if (Interlocked.Exchange(ref _state, Off) == Parked)
        {
            Resume(inline: false);
        }
    }

    /// <summary>
    /// The direction ends, or a hand-off needs the loop: a parked loop resumes on the thread pool to see it.
    /// A loop that is about to park (it checked its state before the caller changed it) finds the wake-up
    /// waiting as a demand and does not park.
    /// </summary>
    public void Wake() => Ask(inline: false);

    /// <summary>Resumes a parked loop, or leaves a demand for the loop that is about to park.</summary>
    private void Ask(bool inline)
    {
        while (true)
        {
            int state = Volatile.Read(ref _state);
            if (state is Off or Demanded)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _state, state == Parked ? Idle : Demanded, state) == state)
            {
                if (state == Parked)
                {
                    Resume(inline);
                }

                return;
            }
        }
    }

    private void Resume(bool inline)
    {
        _core.RunContinuationsAsynchronously = !inline;
        _core.SetResult(true);
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
