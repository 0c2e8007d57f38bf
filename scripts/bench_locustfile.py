"""Locust's side of scripts/bench.sh: the same work as lva-loadtest's comparison rows.

Each user does what `lva-loadtest --scenario custom --tags health,stats` makes an
AuthenticatedUser do: it registers and logs in at its start, then runs the health check and
the stats check with the suite's weights (10 and 3), each answer's body checked as the tool
checks it, and deletes its account at its end. BENCH_WAIT=paced gives the
suite's 1-3 s wait between tasks, BENCH_WAIT=flat none. Choose the client by class name:
BenchHttpUser (requests) or BenchFastHttpUser (geventhttpclient).
"""

import os
import uuid

from locust import FastHttpUser, HttpUser, between, constant

WAIT = between(1, 3) if os.environ.get("BENCH_WAIT", "paced") == "paced" else constant(0)


class BenchWork:
    """A user's start and end, shared by both clients' classes (their tasks are below)."""

    wait_time = WAIT

    def on_start(self):
        self.email = f"lt-bench-{uuid.uuid4().hex[:16]}@loadtest.example.com"
        self.password = "Bench-" + uuid.uuid4().hex
        with self.client.post(
            "/api/auth/register",
            json={"email": self.email, "password": self.password, "full_name": "Load Test User"},
            catch_response=True,
        ) as r:
            if r.status_code not in (200, 201):
                r.failure(f"registration refused ({r.status_code})")
        self.tokens = {}
        with self.client.post(
            "/api/auth/login/json",
            json={"email": self.email, "password": self.password},
            catch_response=True,
        ) as r:
            if r.status_code == 200:
                self.tokens = r.json()
            else:
                r.failure(f"login refused ({r.status_code})")

    def on_stop(self):
        access = self.tokens.get("access_token")
        if not access:
            return
        self.client.post(
            "/api/gdpr/delete",
            json={"confirm": True, "reason": "load test cleanup"},
            headers={"Authorization": f"Bearer {access}"},
        )


def health_check(user):
    with user.client.get("/health", catch_response=True) as r:
        if r.status_code == 200 and r.json().get("status") != "healthy":
            r.failure("status is not healthy")


def get_stats(user):
    with user.client.get("/api/stats", catch_response=True) as r:
        if r.status_code == 200 and not isinstance(r.json().get("database"), dict):
            r.failure("no database section in the stats")


# The suite's weights.
TASKS = {health_check: 10, get_stats: 3}


class BenchHttpUser(BenchWork, HttpUser):
    tasks = TASKS


class BenchFastHttpUser(BenchWork, FastHttpUser):
    tasks = TASKS
