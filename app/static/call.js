// The call page: a word or a turn's time seeks its recording; the word being
// played is marked. Without this script the page still reads in full and the
// player still plays; nothing here talks to the server.
"use strict";

(function () {
  function setUp(section) {
    var audio = section.querySelector("audio");
    if (!audio) {
      return;
    }
    // Sorted by start: two channels' turns may overlap in time.
    var timed = Array.prototype.slice.call(section.querySelectorAll(".word")).map(function (word) {
      return { word: word, start: parseFloat(word.dataset.start), end: parseFloat(word.dataset.end) };
    });
    timed.sort(function (a, b) { return a.start - b.start; });
    var words = timed.map(function (item) { return item.word; });
    var starts = timed.map(function (item) { return item.start; });
    var ends = timed.map(function (item) { return item.end; });
    var current = null;

    function seek(seconds) {
      if (!isFinite(seconds)) {
        return;
      }
      audio.currentTime = seconds;
      var playing = audio.play();
      if (playing && playing.catch) {
        playing.catch(function () { /* the browser wants a gesture first; the player shows it */ });
      }
    }

    // The last word that starts at or before t, if t is within it.
    function wordAt(t) {
      var low = 0;
      var high = starts.length - 1;
      var found = -1;
      while (low <= high) {
        var middle = (low + high) >> 1;
        if (starts[middle] <= t) {
          found = middle;
          low = middle + 1;
        } else {
          high = middle - 1;
        }
      }
      return found >= 0 && t < ends[found] ? words[found] : null;
    }

    function mark() {
      var word = audio.paused && audio.currentTime === 0 ? null : wordAt(audio.currentTime);
      if (word === current) {
        return;
      }
      if (current) {
        current.classList.remove("current");
        current.removeAttribute("aria-current");
      }
      if (word) {
        word.classList.add("current");
        word.setAttribute("aria-current", "true");
      }
      current = word;
    }

    // A <button> fires click for Enter and Space too: the keyboard needs nothing more.
    section.addEventListener("click", function (event) {
      var target = event.target.closest(".seek, .word");
      if (target && section.contains(target)) {
        seek(parseFloat(target.dataset.start));
      }
    });
    audio.addEventListener("timeupdate", mark);
    audio.addEventListener("seeked", mark);
  }

  document.querySelectorAll("section.recording").forEach(setUp);

  // While a recording is still on its way, ask the API every 2 s, and reload
  // the page once something about its recordings has moved on.
  var live = document.querySelector("[data-poll]");
  if (live && window.fetch) {
    var seen = null;
    var state = function (body) {
      return JSON.stringify(
        body.recordings.map(function (r) {
          return [r.recording_sid, r.status, r.stage, r.transcript && r.transcript.status];
        })
      );
    };
    var poll = function () {
      fetch(live.getAttribute("data-poll"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (body) {
          if (body) {
            var now = state(body);
            if (seen !== null && now !== seen) {
              window.location.reload();
              return;
            }
            seen = now;
          }
          window.setTimeout(poll, 2000);
        })
        .catch(function () {
          window.setTimeout(poll, 2000);
        });
    };
    poll();
  }
})();
