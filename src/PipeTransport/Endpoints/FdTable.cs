using System.Diagnostics;
using PipeTransport.Interop;

namespace PipeTransport.Endpoints;

/// <summary>
/// How many fds are free under <c>RLIMIT_NOFILE</c>, cheaply enough to ask before every accept. Linux
/// has no call that says how many fds a process has open, so the fds this library owns are counted
/// as they open and close (<see cref="SafeFdHandle"/>), and everyone else's (the runtime's, the
/// application's) are counted in <c>/proc/self/fd</c> now and then.
/// </summary>
internal static class FdTable
{
    /// <summary>How old a count of the others' fds may be while fds are plentiful.</summary>
    private static readonly long RecountInterval = Stopwatch.Frequency;

    /// <summary>How old a count may be when the estimate says fds are short (a count decides whether to pause).</summary>
    private static readonly long ShortRecountInterval = Stopwatch.Frequency / 20;

    /// <summary>Counting takes time in proportion to the open fds: it runs at most once per this many of its own durations.</summary>
    private const long CountCostFactor = 100;

    private static readonly Lock s_countLock = new();
    private static long s_owned;
    private static long s_others;
    private static long s_limit = int.MaxValue; // unknown until the first count
    private static long s_countedAt;
    private static long s_countTicks;
    private static TaskCompletionSource? s_closed;

    /// <summary>One of our fds was opened.</summary>
    public static void Opened() => Interlocked.Increment(ref s_owned);

    /// <summary>One of our fds was closed: wakes whoever waits in <see cref="NextCloseAsync"/>.</summary>
    public static void Closed()
    {
        Interlocked.Decrement(ref s_owned);
        if (Volatile.Read(ref s_closed) is { } waiters && Interlocked.CompareExchange(ref s_closed, null, waiters) == waiters)
        {
            waiters.TrySetResult();
        }
    }

    /// <summary>Completes when this library next closes an fd.</summary>
    public static Task NextCloseAsync()
    {
        TaskCompletionSource? current = Volatile.Read(ref s_closed);
        if (current is null)
        {
            var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            current = Interlocked.CompareExchange(ref s_closed, created, null) ?? created;
        }

        return current.Task;
    }

    /// <summary>Makes the next <see cref="Free"/> count again (an accept met the limit, or got a number that says fds are short).</summary>
    public static void Invalidate() => Volatile.Write(ref s_countedAt, 0);

    /// <summary>The soft <c>RLIMIT_NOFILE</c> at the last count.</summary>
    public static long Limit => Volatile.Read(ref s_limit);

    /// <summary>
    /// The fds still free: the limit less ours (exact) and the others' (at the last count). Counts again
    /// when that count is old: after <see cref="RecountInterval"/>, or when the estimate is at most
    /// <paramref name="wanted"/>, after <see cref="ShortRecountInterval"/>; never more often than
    /// <see cref="CountCostFactor"/> times the count's own duration.
    /// </summary>
    public static long Free(long wanted)
    {
        long now = Stopwatch.GetTimestamp();
        long free = Estimate();
        long age = now - Volatile.Read(ref s_countedAt);
        long maxAge = free > wanted ? RecountInterval : ShortRecountInterval;
        if (age > Math.Max(maxAge, CountCostFactor * Volatile.Read(ref s_countTicks)) && s_countLock.TryEnter())
        {
            try
            {
                Count(now);
            }
            finally
            {
                s_countLock.Exit();
            }

            free = Estimate();
        }

        return free;
    }

    private static long Estimate() => Volatile.Read(ref s_limit) - Volatile.Read(ref s_owned) - Volatile.Read(ref s_others);

    private static void Count(long now)
    {
        long limit = Sys.FdLimit();
        if (limit < 0)
        {
            limit = int.MaxValue; // unknown: let accept4 report the limit
        }

        // At EMFILE the count's own open failed: the table is full. Without /proc only our own fds count.
        int open = Sys.CountOpenFds();
        if (open >= 0 || open == -Libc.EMFILE)
        {
            long others = (open >= 0 ? open : limit) - Volatile.Read(ref s_owned);
            Volatile.Write(ref s_others, Math.Max(others, 0));
        }

        Volatile.Write(ref s_limit, limit);
        long done = Stopwatch.GetTimestamp();
        Volatile.Write(ref s_countTicks, done - now);
        Volatile.Write(ref s_countedAt, done);
    }
}
